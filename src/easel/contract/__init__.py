"""What OpenAI's Images API says, and nothing else: profiles, parameter rules, messages, shapes, OpenAPI."""
