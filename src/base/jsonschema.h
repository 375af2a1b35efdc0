/* jsonschema: JSON Schema draft-04 validation, used for the parameter schemas that
 * services and plans publish in their catalogs. A schema is compiled once and can then
 * validate any number of instances, from any number of threads at the same time. */
#ifndef OSBILL_JSONSCHEMA_H
#define OSBILL_JSONSCHEMA_H

#include <stddef.h>

#include <jansson.h>

/* The only non-local $ref that compiles: the draft-04 meta-schema is embedded. */
#define JSCHEMA_DRAFT04_META "http://json-schema.org/draft-04/schema#"

/* Guards against schemas that recurse without consuming the instance ({"$ref": "#"})
 * and against instances nested deeper than anything a broker needs. */
#define JSCHEMA_MAX_REF_CHAIN 64    /* $refs followed in a row at one instance location */
#define JSCHEMA_MAX_DEPTH 512       /* nested subschema evaluations in one validation */
#define JSCHEMA_MAX_SCHEMA_DEPTH 256 /* nesting of the schema document itself */

typedef struct jschema jschema;

/* Compiles a draft-04 schema. The schema is deep-copied, so the caller keeps ownership of
 * `schema` and may change or free it afterwards. Rejects invalid schemas (wrong keyword
 * types, bad or non-ECMA-262 regexes) and every $ref that is not local ("#",
 * "#/json/pointer", or a ref that resolves to an "id" inside the document), except the
 * draft-04 meta-schema JSCHEMA_DRAFT04_META. Returns 0, or -1 with a message in err. */
int jschema_compile(const json_t *schema, jschema **out, char *err, size_t errlen);

/* Returns 0 when the instance is valid, 1 when it is not, -1 on an internal error (out of
 * memory, recursion guard hit, regex match limit hit). For 1, err reads
 * "<instance JSON pointer>: <what is wrong> (<keyword>)", e.g.
 * "/max_keys: must be <= 100 (maximum)"; the document root is written "(root)".
 * err may be NULL when errlen is 0. Thread-safe: `s` is never modified. */
int jschema_validate(const jschema *s, const json_t *instance, char *err, size_t errlen);

void jschema_free(jschema *s);

#endif
