"""Lesson 08-modern (bonus), the modern decoder: rotary positions per batch element, grouped-query attention's
shared key/value heads, and mixture-of-experts routing with its load-balancing loss."""

from __future__ import annotations

LESSON = "08-modern"

EXERCISES = ()
