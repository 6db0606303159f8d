# Orders and order lines arrive with the order-history issue.
