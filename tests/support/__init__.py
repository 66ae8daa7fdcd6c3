"""Test support: ARC object builders and throwaway servers started by the test suite."""
