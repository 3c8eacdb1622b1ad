"""The OpenAI-compatible HTTP API: request bodies, messages and templates, sampling fields, tools
and grammars, and the answers in OpenAI's shapes. The routing core (router/) runs the requests."""
