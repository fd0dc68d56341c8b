"""Screens and modals: bindings and layout; the widgets they hold live in widgets/."""
