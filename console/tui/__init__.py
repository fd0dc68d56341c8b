"""The Textual app: the App, its screens, toasts and alerts; drives the engine and draws with widgets/."""
