/*
 * Sets the IP TOS / IPv6 traffic class of an already-bound UDP socket, so
 * STAMP test packets carry the DSCP the plan asks for. Node's dgram has no
 * API for it (it has setTTL, not setTOS); this is the one native piece.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <node_api.h>
#include <string.h>
#include <sys/socket.h>

static int read_args(napi_env env, napi_callback_info info, size_t want, int32_t *out) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, NULL, "expected (fd, family[, tos])");
    return 0;
  }
  for (size_t i = 0; i < want; i++) {
    if (napi_get_value_int32(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "arguments must be integers");
      return 0;
    }
  }
  return 1;
}

/* setTos(fd, family 4|6, tos 0..255) */
static napi_value set_tos(napi_env env, napi_callback_info info) {
  int32_t a[3];
  if (!read_args(env, info, 3, a)) return NULL;
  int tos = a[2] & 0xff;
  int rc = a[1] == 6 ? setsockopt(a[0], IPPROTO_IPV6, IPV6_TCLASS, &tos, sizeof tos)
                     : setsockopt(a[0], IPPROTO_IP, IP_TOS, &tos, sizeof tos);
  if (rc != 0) napi_throw_error(env, NULL, strerror(errno));
  return NULL;
}

/* getTos(fd, family 4|6) -> tos */
static napi_value get_tos(napi_env env, napi_callback_info info) {
  int32_t a[2];
  if (!read_args(env, info, 2, a)) return NULL;
  int tos = 0;
  socklen_t len = sizeof tos;
  int rc = a[1] == 6 ? getsockopt(a[0], IPPROTO_IPV6, IPV6_TCLASS, &tos, &len)
                     : getsockopt(a[0], IPPROTO_IP, IP_TOS, &tos, &len);
  if (rc != 0) {
    napi_throw_error(env, NULL, strerror(errno));
    return NULL;
  }
  napi_value result;
  napi_create_int32(env, tos, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"setTos", NULL, set_tos, NULL, NULL, NULL, napi_default, NULL},
    {"getTos", NULL, get_tos, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}
