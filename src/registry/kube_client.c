/* kube_client.c: authenticated GETs to the API server (see kube_client.h). */
#include "registry/kube_client.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "util/alloc.h"
#include "util/common.h"

#define MAX_RESPONSE (256u * 1024 * 1024)

static void wipe_free(char *s)
{
    if (!s) return;
    memset(s, 0, strlen(s));
    free(s);
}

/* The bearer token: the static one, or the token file read now (projected service-account
 * tokens rotate). */
static char *current_token(const gw_kube_conn_t *c)
{
    if (!c->token_file) return c->token ? gw_strdup(c->token) : NULL; /* the file wins, as in client-go */
    FILE *f = fopen(c->token_file, "rb");
    if (!f) return NULL;
    char buf[16384];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    while (n && isspace((unsigned char)buf[n - 1])) n--;
    buf[n] = 0;
    char *t = n ? gw_strdup(buf) : NULL;
    memset(buf, 0, sizeof(buf));
    return t;
}

int gw_kube_get(const gw_kube_conn_t *conn, const char *path_and_query, const gw_kube_get_t *o, void *ud,
                gw_ctl_xfer_t **out)
{
    char *url = gw_asprintf("%s%s", conn->server, path_and_query);
    char *token = current_token(conn);
    char *authz = token ? gw_asprintf("Authorization: Bearer %s", token) : NULL;
    const char *hdrs[2] = {"Accept: application/json", authz};
    gw_ctl_request_t rq = {.method = "GET",
                           .url = url,
                           .headers = hdrs,
                           .nheaders = authz ? 2 : 1,
                           .crt_pem = conn->crt_pem,
                           .key_pem = conn->key_pem,
                           .verify = !conn->insecure,
                           .ca_pem = conn->ca_pem,
                           .timeout_ms = o->timeout_ms,
                           .connect_timeout_ms = 5000,
                           .max_body = MAX_RESPONSE,
                           .on_head = o->on_head,
                           .on_data = o->on_data};
    int rc = gw_ctl_fetch(&rq, o->done, ud, out);
    wipe_free(authz);
    wipe_free(token);
    free(url);
    return rc;
}

const char *gw_kube_status_message(const gw_ctl_response_t *r, char *buf, size_t len)
{
    json_t *j = r->body_len ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
    const char *m = json_string_value(json_object_get(j, "message"));
    snprintf(buf, len, "%s", m ? m : "");
    json_decref(j);
    return buf;
}
