"""Everything that may run beside a learner's code in the grading sandbox: the trust boundary.

Modules here import only the standard library, torch, numpy and each other (an
import-linter contract holds them to it), so a sandboxed process can load the whole
package and still hold neither the reference implementation nor the expected outputs.
The grading sandbox loads exactly this package and nothing else of the course's.
"""
