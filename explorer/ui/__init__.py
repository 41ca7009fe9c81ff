"""Panel/HoloViews components wrapping the core models (the only place Panel is imported)."""
