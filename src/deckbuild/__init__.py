"""deckbuild: compile YAML and Markdown flashcard sources into Anki packages (.apkg)."""

__version__ = "0.1.0"
