"""Every write to the order history goes through these functions (the import is the only
one so far: orders come from the ERP, the back office shows them read-only)."""

from __future__ import annotations

from orders.imports import OrdersImportResult, RowError, orders_import, parse_codes, parse_column_map

__all__ = ["OrdersImportResult", "RowError", "orders_import", "parse_codes", "parse_column_map"]
