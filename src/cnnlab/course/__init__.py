"""The lecture's own tables, regenerated from the zoo and the analysis and set beside the
lecture's numbers (``cnnlab lecture``).

The course sits above the zoo, the analysis and viz: it is the one place that ties the
lecture's networks (by name, from the zoo) to the arithmetic (from the analysis).
"""

from __future__ import annotations

from cnnlab.course.lecture import TABLES, LectureRow, LectureTable, lecture_tables, render_tables

__all__ = ["TABLES", "LectureRow", "LectureTable", "lecture_tables", "render_tables"]
