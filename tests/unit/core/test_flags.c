/* test_flags.c: unit tests for src/core/flags.c (SPEC §2 command line). */
#include <stdlib.h>
#include <unistd.h>

#include "core/cpus.h"
#include "core/flags.h"
#include "test.h"
#include "util/common.h"
#include "util/log.h"

static int parse_argv(gw_flags_t *f, char *err, size_t errlen, int argc, const char **argv)
{
    return gw_flags_parse(argc, (char **)argv, f, err, errlen);
}

/* Parses a NULL-terminated list of arguments (program name added). */
static int parse(gw_flags_t *f, char *err, size_t errlen, const char *const *args)
{
    const char *argv[32] = {"appgw"};
    int argc = 1;
    while (args[argc - 1] && argc < 31) {
        argv[argc] = args[argc - 1];
        argc++;
    }
    argv[argc] = NULL;
    return parse_argv(f, err, errlen, argc, argv);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_defaults(void)
{
    gw_flags_t f;
    char err[256];
    const char *argv[] = {"appgw", NULL};
    CHECK_EQ_INT(parse_argv(&f, err, sizeof(err), 1, argv), 0);
    CHECK_EQ_STR(f.api_server_url, "");
    CHECK_EQ_STR(f.kube_config, "");
    CHECK_EQ_STR(f.secrets_namespace, "kyma-system");
    CHECK_EQ_INT(f.proxy_port, 8080);
    CHECK_EQ_INT(f.proxy_port_compass, 8082);
    CHECK_EQ_INT(f.external_api_port, 8081);
    CHECK_EQ_INT(f.log_level, GW_LOG_INFO);
    CHECK_EQ_INT(f.proxy_timeout, 10);
    CHECK_EQ_INT(f.request_timeout, 10);
    CHECK_EQ_INT(f.proxy_cache_ttl, 120);
    CHECK_EQ_STR(f.config_dir, "");
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    CHECK_EQ_INT(f.workers, gw_cpus_available());
    CHECK(f.workers >= 1 && f.workers <= (cpus < 1 ? 1 : cpus > 256 ? 256 : cpus));
    CHECK_EQ_INT(f.shutdown_grace, 30);
    CHECK_EQ_STR(f.listen_address, "");
    CHECK_EQ_STR(err, "");
    gw_flags_free(&f);
    CHECK(f.api_server_url == NULL && f.listen_address == NULL);
    gw_flags_free(&f); /* idempotent */

    /* argc 0 (no program name) is fine too */
    CHECK_EQ_INT(parse_argv(&f, err, sizeof(err), 0, argv), 0);
    CHECK_EQ_INT(f.proxy_port, 8080);
    gw_flags_free(&f);
}

static void test_syntaxes(void)
{
    gw_flags_t f;
    char err[256];
    CHECK_EQ_INT(parse(&f, err, sizeof(err),
                       ARGS("-proxyPort=9000", "--proxyPortCompass=9002", "-externalAPIPort", "9001",
                            "--logLevel", "debug", "-applicationSecretsNamespace=ns", "--kubeConfig",
                            "/k/config", "-apiServerURL=https://k8s:6443", "-proxyTimeout=5",
                            "--requestTimeout", "7", "-proxyCacheTTL=0", "-configDir=/etc/appgw",
                            "-workers", "4", "--shutdownGrace=0", "-listenAddress", "127.0.0.1",
                            "--retryBodyLimit=0", "--minBodyRate=0")),
                 0);
    CHECK_EQ_INT(f.proxy_port, 9000);
    CHECK_EQ_INT(f.proxy_port_compass, 9002);
    CHECK_EQ_INT(f.external_api_port, 9001);
    CHECK_EQ_INT(f.log_level, GW_LOG_DEBUG);
    CHECK_EQ_STR(f.secrets_namespace, "ns");
    CHECK_EQ_STR(f.kube_config, "/k/config");
    CHECK_EQ_STR(f.api_server_url, "https://k8s:6443");
    CHECK_EQ_INT(f.proxy_timeout, 5);
    CHECK_EQ_INT(f.request_timeout, 7);
    CHECK_EQ_INT(f.proxy_cache_ttl, 0);
    CHECK_EQ_STR(f.config_dir, "/etc/appgw");
    CHECK_EQ_INT(f.workers, 4);
    CHECK_EQ_INT(f.shutdown_grace, 0);
    CHECK_EQ_STR(f.listen_address, "127.0.0.1");
    CHECK_EQ_INT(f.retry_body_limit, 0);
    CHECK_EQ_INT(f.min_body_rate, 0);
    gw_flags_free(&f);
    /* defaults of our additions */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-proxyPort=9000")), 0);
    CHECK_EQ_INT(f.retry_body_limit, 1024 * 1024);
    CHECK_EQ_INT(f.min_body_rate, 1024);
    gw_flags_free(&f);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-minBodyRate", "4096")), 0);
    CHECK_EQ_INT(f.min_body_rate, 4096);
    gw_flags_free(&f);
    /* out of range */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-retryBodyLimit=-1")), GW_EINVAL);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-retryBodyLimit=2000000000")), GW_EINVAL);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-minBodyRate=-1")), GW_EINVAL);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-minBodyRate=1k")), GW_EINVAL);
}

/* -accessLog: Go's boolean flag syntax (alone = true, never takes the next argument). */
static void test_bool_flag(void)
{
    gw_flags_t f;
    char err[256];
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-proxyPort=9000")), 0);
    CHECK_EQ_INT(f.access_log, 1);
    gw_flags_free(&f);
    static const char *const off[] = {"-accessLog=false", "--accessLog=0", "-accessLog=F", "-accessLog=FALSE"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(off); i++) {
        CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS(off[i])), 0);
        CHECK_EQ_INT(f.access_log, 0);
        gw_flags_free(&f);
    }
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-accessLog=false", "-accessLog", "-proxyPort", "9001")), 0);
    CHECK_EQ_INT(f.access_log, 1);
    CHECK_EQ_INT(f.proxy_port, 9001);
    gw_flags_free(&f);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-accessLog=yes")), GW_EINVAL);
    CHECK(strstr(err, "accessLog") != NULL);
    /* alone, it does not swallow the next word: "false" is then a stray argument */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-accessLog", "false")), GW_EINVAL);
    /* -upstreamHTTP2: the same syntax, default true */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-proxyPort=9000")), 0);
    CHECK_EQ_INT(f.upstream_http2, 1);
    gw_flags_free(&f);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("--upstreamHTTP2=false")), 0);
    CHECK_EQ_INT(f.upstream_http2, 0);
    gw_flags_free(&f);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-upstreamHTTP2=0", "-upstreamHTTP2")), 0);
    CHECK_EQ_INT(f.upstream_http2, 1);
    gw_flags_free(&f);
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-upstreamHTTP2=no")), GW_EINVAL);
}

static void test_values(void)
{
    gw_flags_t f;
    char err[256];
    /* the last occurrence wins; strings are replaced without leaking */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-proxyPort=1", "-proxyPort=65535", "-kubeConfig=a", "-kubeConfig=b")), 0);
    CHECK_EQ_INT(f.proxy_port, 65535);
    CHECK_EQ_STR(f.kube_config, "b");
    gw_flags_free(&f);
    /* empty string values and values that look like flags */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-apiServerURL=", "-kubeConfig", "-weird", "-configDir=a=b")), 0);
    CHECK_EQ_STR(f.api_server_url, "");
    CHECK_EQ_STR(f.kube_config, "-weird");
    CHECK_EQ_STR(f.config_dir, "a=b");
    gw_flags_free(&f);
    /* every log level, upper case accepted */
    const char *levels[] = {"debug", "info", "warn", "error", "dpanic", "panic", "fatal"};
    for (int i = 0; i < 7; i++) {
        char arg[64];
        snprintf(arg, sizeof(arg), "-logLevel=%s", levels[i]);
        CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS(arg)), 0);
        CHECK_EQ_INT(f.log_level, i);
        gw_flags_free(&f);
    }
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-logLevel=WARN")), 0);
    CHECK_EQ_INT(f.log_level, GW_LOG_WARN);
    gw_flags_free(&f);
    /* range edges */
    CHECK_EQ_INT(parse(&f, err, sizeof(err),
                       ARGS("-proxyTimeout=86400", "-requestTimeout=1", "-proxyCacheTTL=86400", "-workers=256",
                            "-shutdownGrace=3600", "-proxyPortCompass=+1", "-externalAPIPort=0080")),
                 0);
    CHECK_EQ_INT(f.proxy_timeout, 86400);
    CHECK_EQ_INT(f.request_timeout, 1);
    CHECK_EQ_INT(f.proxy_cache_ttl, 86400);
    CHECK_EQ_INT(f.workers, 256);
    CHECK_EQ_INT(f.shutdown_grace, 3600);
    CHECK_EQ_INT(f.proxy_port_compass, 1);
    CHECK_EQ_INT(f.external_api_port, 80);
    gw_flags_free(&f);
    /* "--" ends the flags */
    CHECK_EQ_INT(parse(&f, err, sizeof(err), ARGS("-workers=2", "--")), 0);
    CHECK_EQ_INT(f.workers, 2);
    gw_flags_free(&f);
}

static void test_help(void)
{
    gw_flags_t f;
    char err[256];
    const char *const *cases[] = {ARGS("-h"), ARGS("--h"), ARGS("-help"), ARGS("--help"),
                                  ARGS("-proxyPort=1", "-help"), ARGS("-help=1")};
    for (size_t i = 0; i < GW_ARRAY_SIZE(cases); i++) {
        CHECK_EQ_INT(parse(&f, err, sizeof(err), cases[i]), 1);
        CHECK(f.api_server_url == NULL); /* already freed */
        gw_flags_free(&f);
    }
}

#define CHECK_ERR(args, msg)                                            \
    do {                                                                \
        gw_flags_t _f;                                                  \
        char _err[256];                                                 \
        CHECK_EQ_INT(parse(&_f, _err, sizeof(_err), args), GW_EINVAL);  \
        CHECK_EQ_STR(_err, msg);                                        \
        CHECK(_f.secrets_namespace == NULL && _f.kube_config == NULL);  \
        gw_flags_free(&_f);                                             \
    } while (0)

static void test_errors(void)
{
    CHECK_ERR(ARGS("-foo"), "unknown flag: -foo");
    CHECK_ERR(ARGS("--foo=1"), "unknown flag: -foo");
    CHECK_ERR(ARGS("-proxyport=1"), "unknown flag: -proxyport");
    CHECK_ERR(ARGS("-proxyPort"), "flag needs a value: -proxyPort");
    CHECK_ERR(ARGS("-workers=2", "--kubeConfig"), "flag needs a value: -kubeConfig");
    CHECK_ERR(ARGS("-proxyPort=abc"), "invalid value \"abc\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPort", "0"), "invalid value \"0\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPortCompass=65536"),
              "invalid value \"65536\" for flag -proxyPortCompass: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-externalAPIPort=-1"),
              "invalid value \"-1\" for flag -externalAPIPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPort="), "invalid value \"\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPort= 80"), "invalid value \" 80\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPort=80x"), "invalid value \"80x\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyPort=99999999999999999999"),
              "invalid value \"99999999999999999999\" for flag -proxyPort: must be an integer between 1 and 65535");
    CHECK_ERR(ARGS("-proxyTimeout=0"), "invalid value \"0\" for flag -proxyTimeout: must be an integer between 1 and 86400");
    CHECK_ERR(ARGS("-requestTimeout=86401"),
              "invalid value \"86401\" for flag -requestTimeout: must be an integer between 1 and 86400");
    CHECK_ERR(ARGS("-proxyCacheTTL=-1"), "invalid value \"-1\" for flag -proxyCacheTTL: must be an integer between 0 and 86400");
    CHECK_ERR(ARGS("-workers=0"), "invalid value \"0\" for flag -workers: must be an integer between 1 and 256");
    CHECK_ERR(ARGS("-workers=257"), "invalid value \"257\" for flag -workers: must be an integer between 1 and 256");
    CHECK_ERR(ARGS("-shutdownGrace=3601"),
              "invalid value \"3601\" for flag -shutdownGrace: must be an integer between 0 and 3600");
    CHECK_ERR(ARGS("-shutdownGrace=1.5"), "invalid value \"1.5\" for flag -shutdownGrace: must be an integer between 0 and 3600");
    CHECK_ERR(ARGS("-logLevel=verbose"),
              "invalid value \"verbose\" for flag -logLevel: must be one of debug, info, warn, error, dpanic, panic, fatal");
    CHECK_ERR(ARGS("-logLevel="), "invalid value \"\" for flag -logLevel: must be one of debug, info, warn, error, dpanic, panic, fatal");
    CHECK_ERR(ARGS("-logLevel=debugdebugdebugdebug"),
              "invalid value \"debugdebugdebugdebug\" for flag -logLevel: must be one of debug, info, warn, error, "
              "dpanic, panic, fatal");
    CHECK_ERR(ARGS("stray"), "unexpected argument: stray");
    CHECK_ERR(ARGS("-workers=2", "-"), "unexpected argument: -");
    CHECK_ERR(ARGS("--", "stray"), "unexpected argument: stray");
    CHECK_ERR(ARGS("---proxyPort=1"), "bad flag syntax: ---proxyPort=1");
    CHECK_ERR(ARGS("-=1"), "bad flag syntax: -=1");
    CHECK_ERR(ARGS("--=1"), "bad flag syntax: --=1");
}

static void test_error_buffer(void)
{
    gw_flags_t f;
    char small[8];
    /* message truncated to the buffer, still NUL-terminated */
    CHECK_EQ_INT(parse(&f, small, sizeof(small), ARGS("-foo")), GW_EINVAL);
    CHECK_EQ_STR(small, "unknown");
    gw_flags_free(&f);
    /* no error buffer at all */
    const char *argv[] = {"appgw", "-foo", NULL};
    CHECK_EQ_INT(gw_flags_parse(2, (char **)argv, &f, NULL, 0), GW_EINVAL);
    gw_flags_free(&f);
}

static void test_usage(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&text, &len);
    gw_flags_usage(m);
    fclose(m);
    const char *names[] = {"-apiServerURL", "-kubeConfig", "-applicationSecretsNamespace", "-proxyPort ",
                           "-proxyPortCompass", "-externalAPIPort", "-logLevel", "-proxyTimeout",
                           "-requestTimeout", "-proxyCacheTTL", "-configDir", "-workers", "-shutdownGrace",
                           "-listenAddress", "kyma-system", "(default 8080)", "(default 8082)", "(default 8081)",
                           "(default info)", "(default 120)", "(default 30)", "every IPv6 and IPv4 address (default \"\")"};
    for (size_t i = 0; i < GW_ARRAY_SIZE(names); i++) {
        if (!strstr(text, names[i])) fprintf(stderr, "usage lacks %s\n", names[i]);
        CHECK(strstr(text, names[i]) != NULL);
    }
    free(text);
}

int main(void)
{
    GW_RUN(test_defaults);
    GW_RUN(test_syntaxes);
    GW_RUN(test_bool_flag);
    GW_RUN(test_values);
    GW_RUN(test_help);
    GW_RUN(test_errors);
    GW_RUN(test_error_buffer);
    GW_RUN(test_usage);
    return gw_test_summary();
}
