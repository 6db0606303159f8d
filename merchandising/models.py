# Suggestions, links, tiers and specials arrive with their issues.
