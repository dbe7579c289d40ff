"""Natural wrong answers, one module per lesson (``lesson01.py`` ... ``lesson07.py``), each with ``ANSWERS``.

The format, and how an answer is run and judged, are in :mod:`tests.support.wrong_corpus`.
"""
