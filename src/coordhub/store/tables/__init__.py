"""Query objects, one per table family. Only these modules contain SQL.

Each method runs inside the caller's transaction (the unit of work); none
commits. Methods that look something up return ``None`` or ``[]`` when there
is nothing, never raise for absence.
"""
