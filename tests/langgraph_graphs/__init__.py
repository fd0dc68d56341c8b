"""Small LangGraph graphs, one per interrupt family, served by a real LangGraph API server in the tests."""
