"""Who may call, how much, and what it cost: auth, keys, rate limits, budgets, usage, moderation, the gate."""
