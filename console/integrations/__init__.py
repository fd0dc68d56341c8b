"""Code that runs on the agent's side (inside a workflow engine's worker), never in the console itself."""
