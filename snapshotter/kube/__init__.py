"""① SOURCE: the only package that imports the `kubernetes` client.

It returns plain dicts and our own error types; the untyped client and its
exceptions never leave this package.
"""
