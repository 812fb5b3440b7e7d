"""MediVision: 4x super-resolution of brain MRI."""
