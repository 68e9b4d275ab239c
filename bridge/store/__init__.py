"""SQL storage: models, transactions, query functions and migrations. The only place that writes SQL."""
