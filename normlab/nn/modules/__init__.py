"""One file per layer family; ``normlab.nn`` re-exports them all."""
