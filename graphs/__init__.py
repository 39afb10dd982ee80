"""Programs as typed computational graphs: representation, ops, mutation, equivalence."""
