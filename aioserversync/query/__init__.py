"""A MongoDB query engine for decoded EJSON documents and for SQLite rows in EJSON wire form.

* :func:`compile_selector` parses and validates a selector into a :class:`Matcher`;
* :func:`compile_sql` translates it for SQLite JSON1 (:class:`SQLPlan`), with
  :func:`sql_order_by`, :func:`index_expressions` and :func:`register_sqlite_functions`;
* :func:`apply_update`, :func:`validate_modifier` and :func:`is_replacement` implement update
  modifiers;
* :func:`sort_documents`, :func:`sort_key` and :func:`normalize_sort` implement MongoDB sort order;
* :func:`apply_projection` implements inclusion and exclusion projections.

Everything here is pure (no I/O) and follows MongoDB semantics: null versus missing, arrays,
dotted paths, BSON type brackets.
"""

from .matcher import Matcher, compile_selector
from .projection import apply_projection, compile_projection
from .sort import normalize_sort, sort_documents, sort_key
from .sqlite import (
    SQLPlan,
    compile_sql,
    index_expressions,
    register_sqlite_functions,
    sql_order_by,
)
from .updater import apply_update, is_replacement, validate_modifier

__all__ = [
    "Matcher",
    "SQLPlan",
    "apply_projection",
    "apply_update",
    "compile_projection",
    "compile_selector",
    "compile_sql",
    "index_expressions",
    "is_replacement",
    "normalize_sort",
    "register_sqlite_functions",
    "sort_documents",
    "sort_key",
    "sql_order_by",
    "validate_modifier",
]
