"""What runs are judged by: per-image metrics, tables, figures, and reading runs back."""
