"""Operations on one customer that reach into every domain's data: merge two customers, and the
data-subject rights (export everything held, erase)."""
