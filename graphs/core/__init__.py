"""The generic program representation: types, ops, programs, op sets, probes,
execution, equivalence, validity, file format, rendering, mutation, sampling and
generation. Imports no language (the languages import it and register their op sets)."""
