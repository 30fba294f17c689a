"""Pure business rules: no I/O, no clocks, property-tested."""
