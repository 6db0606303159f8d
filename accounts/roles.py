"""The three roles and what each may do, as code so that it can be reviewed.

Permissions are named ``app_label.codename`` and may use shell wildcards; a pattern starting
with ``!`` withholds what it matches from the role's other patterns. Later issues add their
apps' permissions here.
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
        # Publishing in batches or not is the administrators' call; published copies and
        # the decision log are written by the services only.
        "!merchandising.change_publishstate",
        "!merchandising.add_publishedlink",
        "!merchandising.change_publishedlink",
        "!merchandising.delete_publishedlink",
        "!merchandising.add_decision",
        "!merchandising.change_decision",
        "!merchandising.delete_decision",
    ),
    MARKETING: (
        "catalog.view_*",
        "orders.view_*",
        "accounts.view_customeraccount",
        "merchandising.view_*",
    ),
    ADMINISTRATOR: ("*",),
}
