"""Bridges: agents that ask permission inside their own process or session (an MCP client, Claude Code, the OpenAI
Agents SDK, the Claude Agent SDK, an ACP client) post into a queue server (`approval-console serve`) and block until an
operator decides. Each is a client of the queue server only (PROTOCOL.md section 9); each SDK is an optional extra."""
