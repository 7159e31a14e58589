/* readfile.h: reading a whole configuration file (manifests, kubeconfig, service-account
 * files) with a size cap; shared by the registry's sources. */
#ifndef GW_REGISTRY_READFILE_H
#define GW_REGISTRY_READFILE_H

#include <stddef.h>

/* Reads the regular file at path, at most max bytes, into a NUL-terminated buffer (*data, the
 * caller frees; *len excludes the NUL). Intermediate buffers are wiped before they are freed:
 * the content may be a key. Returns 0, or GW_EINVAL with reason set ("No such file or
 * directory" and other strerror texts, "not a regular file", "read failed: ...", "larger than N
 * bytes"); *data is untouched then. */
int gw_read_file(const char *path, size_t max, char **data, size_t *len, char *reason, size_t rn);

#endif
