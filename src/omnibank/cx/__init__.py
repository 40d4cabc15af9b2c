"""Customer-experience management (X1–X5): journey maps with weighted indicators, survey results, Chinese
feedback analytics, alert rules with owners, reach and conversion funnels."""
