/* An intrusive list kept in age order, for tables that expire and evict
 * from the oldest end (the login throttle, the verified-login cache).
 * Nodes have `newer` and `older` pointers to their own type; the list has
 * `newest` and `oldest`. Macros, so each table keeps its own types and
 * walks them without casts; arguments are evaluated more than once, so
 * pass plain lvalues. */
#ifndef POSTERN_CORE_AGE_LIST_H
#define POSTERN_CORE_AGE_LIST_H

#include <stddef.h>

#define AGE_LIST_UNLINK(list, node) do { \
	if ((node)->newer != NULL) \
		(node)->newer->older = (node)->older; \
	else \
		(list)->newest = (node)->older; \
	if ((node)->older != NULL) \
		(node)->older->newer = (node)->newer; \
	else \
		(list)->oldest = (node)->newer; \
	(node)->newer = (node)->older = NULL; \
} while (0)

#define AGE_LIST_PUSH_NEWEST(list, node) do { \
	(node)->older = (list)->newest; \
	(node)->newer = NULL; \
	if ((list)->newest != NULL) \
		(list)->newest->newer = (node); \
	else \
		(list)->oldest = (node); \
	(list)->newest = (node); \
} while (0)

#endif
