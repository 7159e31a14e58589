/* fuzz_manifest.c: libFuzzer driver for untrusted manifests: bytes -> YAML and JSON decoding ->
 * classification -> snapshot build -> a few lookups -> release. Not for: file watching. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "registry/decode.h"
#include "registry/snapshot.h"
#include "util/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const char *p, size_t n, gw_manifest_format_t fmt)
{
    gw_manifest_set_t set = {0};
    gw_manifest_error_t err;
    gw_manifest_list_t l = {0};
    /* decode alone keeps every object, even those classification would refuse */
    if (gw_manifest_decode(p, n, fmt, &l, &err) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            gw_manifest_kind_t kind;
            gw_manifest_classify(l.v[i].obj, l.v[i].line, "kyma-system", &kind, &err);
        }
    }
    gw_manifest_list_free(&l);
    if (gw_manifest_load(p, n, fmt, "kyma-system", &set, &err) != 0) return;
    gw_snapshot_t *s = gw_snapshot_build(set.apps, set.napps, set.secrets, set.nsecrets, "kyma-system");
    for (size_t i = 0; i < set.napps; i++) {
        const char *app = json_string_value(json_object_get(json_object_get(set.apps[i], "metadata"), "name"));
        json_t *svcs = json_object_get(json_object_get(set.apps[i], "spec"), "services");
        for (size_t j = 0; app && j < json_array_size(svcs) && j < 4; j++) {
            const char *dn = json_string_value(json_object_get(json_array_get(svcs, j), "displayName"));
            char norm[58];
            gw_normalise_name(dn ? dn : "", norm);
            gw_route_t r;
            gw_str_t entry = GW_STR_LIT("v1");
            gw_snapshot_lookup(s, gw_str(app), gw_str(norm), NULL, &r);
            if (r.kind == GW_ROUTE_FOUND && strlen(r.api->target.host_header) > 4096) __builtin_trap();
            if (r.kind == GW_ROUTE_AMBIGUOUS && !r.error) __builtin_trap();
            gw_snapshot_lookup(s, gw_str(app), gw_str(norm), &entry, &r);
        }
    }
    gw_route_t r;
    gw_snapshot_lookup(s, (gw_str_t){p, n < 16 ? n : 16}, GW_STR_LIT("x"), NULL, &r);
    gw_snapshot_unref(gw_snapshot_ref(s));
    gw_snapshot_unref(s);
    gw_manifest_set_free(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gw_log_set_level(GW_LOG_FATAL + 1);
    exercise((const char *)data, size, GW_MANIFEST_YAML);
    exercise((const char *)data, size, GW_MANIFEST_JSON);
    return 0;
}
