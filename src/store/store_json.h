/* store_json: columns as the JSON values the APIs answer with, for the modules that build
 * their answers from rows (jansson's types; the store itself knows no JSON). */
#ifndef OSBILL_STORE_JSON_H
#define OSBILL_STORE_JSON_H

#include <jansson.h>

#include "store/store.h"

/* A text column as a JSON string, or null for SQL NULL. */
static inline json_t *store_col_json_text(store_stmt *q, int col)
{
    const char *s = store_col_text(q, col);
    return s ? json_string(s) : json_null();
}

/* A column of milliseconds since the epoch as an RFC 3339 time, or null for SQL NULL. */
static inline json_t *store_col_json_time(store_stmt *q, int col)
{
    if (store_col_null(q, col))
        return json_null();
    char t[32];
    time_format_rfc3339(store_col_int(q, col), t);
    return json_string(t);
}

#endif
