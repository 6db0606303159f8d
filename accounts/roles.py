"""The three roles and what each may do, as code so that it can be reviewed.

Permissions are named ``app_label.codename`` and may use shell wildcards. Later issues add
their apps' permissions here.
"""

PRODUCT_SPECIALIST = "Product specialist"
MARKETING = "Marketing"
ADMINISTRATOR = "Administrator"

ROLES = (PRODUCT_SPECIALIST, MARKETING, ADMINISTRATOR)

ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    PRODUCT_SPECIALIST: (
        "catalog.*",
        "orders.view_*",
        "accounts.view_customeraccount",
        "merchandising.*",
    ),
    MARKETING: (
        "catalog.view_*",
        "orders.view_*",
        "accounts.view_customeraccount",
        "merchandising.view_*",
    ),
    ADMINISTRATOR: ("*",),
}
