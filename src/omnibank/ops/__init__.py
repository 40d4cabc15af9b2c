"""Operations on a whole data home: backup and restore."""
