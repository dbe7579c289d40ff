"""tfcourse: the reference implementation of a course on the Transformer, from first principles.

Each submodule is one concept (see the README's table); ``tfcourse.np`` holds the NumPy
twins of the from-scratch sections.
"""

__version__ = "0.1.0"
