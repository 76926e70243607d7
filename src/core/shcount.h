/* Counts shared by every worker: how many connections a source address
 * holds, how many sessions a user holds, from where. The master maps one
 * region (MAP_SHARED, before forking, like the metrics slots) holding one
 * table per worker. Each worker writes only its own table, so no write
 * ever races another; a total is the sum of a key over every table, read
 * with relaxed atomic loads.
 *
 * Why a table per worker: a worker killed with SIGKILL cannot give back
 * what it counted. Its replacement clears the table (shcount_worker_reset)
 * and the dead sessions' counts vanish with it; one shared table would
 * keep them forever and lock an address or a user out.
 *
 * A table is open addressing with linear probing over 64-bit words: the
 * top 48 bits a seeded hash of the key, the low 16 bits its count in this
 * worker. Words are read and written whole, so a reader never sees half
 * an entry. Known limits, on purpose: a check and the increment after it
 * are not one step, so workers accepting the same key at the same instant
 * may each admit one past the limit (at most workers - 1 over); a reader
 * may miss an entry the owner is moving in a deletion, for an instant;
 * keys whose 48-bit hashes collide share a count (1 in 2^48 per pair,
 * with a seed drawn at startup so no one can aim for it). A table past
 * 3/4 full stops counting new keys and admits them: availability before
 * precision. */
#ifndef POSTERN_CORE_SHCOUNT_H
#define POSTERN_CORE_SHCOUNT_H

#include <stdbool.h>
#include <stdint.h>

struct shcount;

/* Maps tables for worker_count workers of 2^slots_log2 slots each, with a
 * random seed. NULL (errno set) when the region cannot be mapped. */
struct shcount *shcount_new(unsigned worker_count, unsigned slots_log2);
void shcount_free(struct shcount **shared);

/* Empties worker's table: a (re)started worker holds nothing yet. */
void shcount_worker_reset(struct shcount *shared, unsigned worker);

/* The key of a kind ('i' address, 'u' user, 'p' user and address) and one
 * or two strings (b may be NULL). Never 0. */
uint64_t shcount_key(const struct shcount *shared, char kind, const char *a, const char *b);

/* Sum of key's counts over every worker's table. */
unsigned shcount_total(const struct shcount *shared, uint64_t key);

/* Adds one to key in worker's table. false when the table is too full to
 * take a new key (nothing counted: do not call shcount_remove for it). */
bool shcount_add(struct shcount *shared, unsigned worker, uint64_t key);

/* Takes one from key in worker's table (which must hold it). */
void shcount_remove(struct shcount *shared, unsigned worker, uint64_t key);

#endif
