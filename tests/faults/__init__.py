"""Fault injection: real workers, brokers and databases, hurt on purpose (issue 4)."""
