#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
/* The kernel's header: glibc's lacks struct tpacket_auxdata and the TP_STATUS bits. */
#include <linux/if_packet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/* Throw for a failed napi call unless a JS exception is already pending. */
static void fail_napi(napi_env env, const char *call) {
  const napi_extended_error_info *info = NULL;
  char msg[160];
  bool pending = false;
  /* Read the error info first: any later napi call overwrites it. */
  napi_get_last_error_info(env, &info);
  snprintf(msg, sizeof msg, "%s failed: %s", call,
           info != NULL && info->error_message != NULL ? info->error_message : "unknown");
  if (napi_is_exception_pending(env, &pending) == napi_ok && !pending) napi_throw_error(env, NULL, msg);
}

#define CHECK(env, call) \
  do { if ((call) != napi_ok) { fail_napi((env), #call); return NULL; } } while (0)

static napi_value throw_errno(napi_env env, const char *what, const char *ifname, int err) {
  char msg[200];
  if (ifname != NULL) snprintf(msg, sizeof msg, "%s on %s: %s (errno %d)", what, ifname, strerror(err), err);
  else snprintf(msg, sizeof msg, "%s: %s (errno %d)", what, strerror(err), err);
  napi_throw_error(env, NULL, msg);
  return NULL;
}

static bool get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) { fail_napi(env, "napi_get_cb_info"); return false; }
  if (argc < want) { napi_throw_type_error(env, NULL, "missing arguments"); return false; }
  return true;
}

static bool get_int(napi_env env, napi_value v, const char *name, int32_t *out) {
  napi_valuetype t;
  char msg[64];
  if (napi_typeof(env, v, &t) != napi_ok) { fail_napi(env, "napi_typeof"); return false; }
  if (t != napi_number) {
    snprintf(msg, sizeof msg, "%s must be a number", name);
    napi_throw_type_error(env, NULL, msg);
    return false;
  }
  if (napi_get_value_int32(env, v, out) != napi_ok) { fail_napi(env, "napi_get_value_int32"); return false; }
  return true;
}

/* ifname must fit IFNAMSIZ including the NUL, as the kernel requires. */
static bool get_ifname(napi_env env, napi_value v, char out[IFNAMSIZ]) {
  napi_valuetype t;
  size_t len = 0;
  if (napi_typeof(env, v, &t) != napi_ok) { fail_napi(env, "napi_typeof"); return false; }
  if (t == napi_string && napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    fail_napi(env, "napi_get_value_string_utf8");
    return false;
  }
  if (t != napi_string || len == 0 || len >= IFNAMSIZ) {
    napi_throw_type_error(env, NULL, "interface name must be a string of 1-15 bytes");
    return false;
  }
  if (napi_get_value_string_utf8(env, v, out, IFNAMSIZ, &len) != napi_ok) {
    fail_napi(env, "napi_get_value_string_utf8");
    return false;
  }
  return true;
}

static bool get_buffer(napi_env env, napi_value v, void **data, size_t *len) {
  bool is_buffer = false;
  if (napi_is_buffer(env, v, &is_buffer) != napi_ok) { fail_napi(env, "napi_is_buffer"); return false; }
  if (!is_buffer) { napi_throw_type_error(env, NULL, "frame must be a Buffer"); return false; }
  if (napi_get_buffer_info(env, v, data, len) != napi_ok) { fail_napi(env, "napi_get_buffer_info"); return false; }
  return true;
}

static napi_value open_packet_socket(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  char ifname[IFNAMSIZ];
  int32_t ethertype;
  if (!get_args(env, info, 2, argv) || !get_ifname(env, argv[0], ifname) || !get_int(env, argv[1], "ethertype", &ethertype)) return NULL;
  if (ethertype < 0 || ethertype > 0xffff) { napi_throw_range_error(env, NULL, "ethertype must be 0..0xffff"); return NULL; }
  unsigned int ifindex = if_nametoindex(ifname);
  if (ifindex == 0) return throw_errno(env, "openPacketSocket: if_nametoindex", ifname, errno);
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons((uint16_t)ethertype));
  if (fd < 0) return throw_errno(env, "openPacketSocket: socket", ifname, errno);
  struct sockaddr_ll sll;
  memset(&sll, 0, sizeof sll);
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons((uint16_t)ethertype);
  sll.sll_ifindex = (int)ifindex;
  if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "openPacketSocket: bind", ifname, err);
  }
  /* Per-frame status for receiveFrameWithStatus: says when a checksum is left unfinished. */
  int one = 1;
  if (setsockopt(fd, SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "openPacketSocket: setsockopt PACKET_AUXDATA", ifname, err);
  }
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    fail_napi(env, "napi_create_int32");
    return NULL;
  }
  return result;
}

static napi_value send_frame(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  int32_t fd;
  void *data;
  size_t len;
  ssize_t n;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "fd", &fd) || !get_buffer(env, argv[1], &data, &len)) return NULL;
  do n = send(fd, data, len, MSG_DONTWAIT); while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "sendFrame: send", NULL, errno);
  CHECK(env, napi_create_int64(env, (int64_t)n, &result));
  return result;
}

static napi_value receive_frame(napi_env env, napi_callback_info info) {
  napi_value argv[2], result;
  int32_t fd;
  void *data;
  size_t len;
  ssize_t n;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "fd", &fd) || !get_buffer(env, argv[1], &data, &len)) return NULL;
  for (;;) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    n = recvfrom(fd, data, len, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { n = -1; break; }
    if (n < 0) return throw_errno(env, "receiveFrame: recvfrom", NULL, errno);
    /* Packet sockets also see this host's own transmissions; drop them. */
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    break;
  }
  CHECK(env, napi_create_int64(env, (int64_t)n, &result));
  return result;
}

/*
 * Like receiveFrame, but returns null or { length, checksumPending }. checksumPending is
 * TP_STATUS_CSUMNOTREADY: the sender was on this host (veth, bridge, macvlan) and its
 * transport checksum was never finished, so it must not be verified.
 */
static napi_value receive_frame_with_status(napi_env env, napi_callback_info info) {
  napi_value argv[2], result, length, pending;
  int32_t fd;
  void *data;
  size_t len;
  ssize_t n;
  bool checksum_pending = false;
  if (!get_args(env, info, 2, argv) || !get_int(env, argv[0], "fd", &fd) || !get_buffer(env, argv[1], &data, &len)) return NULL;
  for (;;) {
    struct sockaddr_ll from;
    struct iovec iov = { .iov_base = data, .iov_len = len };
    union {
      struct cmsghdr align;
      char buf[CMSG_SPACE(sizeof(struct tpacket_auxdata))];
    } control;
    struct msghdr msg;
    memset(&msg, 0, sizeof msg);
    msg.msg_name = &from;
    msg.msg_namelen = sizeof from;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof control.buf;
    n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      CHECK(env, napi_get_null(env, &result));
      return result;
    }
    if (n < 0) return throw_errno(env, "receiveFrameWithStatus: recvmsg", NULL, errno);
    /* Packet sockets also see this host's own transmissions; drop them. */
    if (from.sll_pkttype == PACKET_OUTGOING) continue;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
      if (c->cmsg_len < CMSG_LEN(sizeof(struct tpacket_auxdata))) continue;
      struct tpacket_auxdata aux;
      /* CMSG_DATA need not be aligned for the struct: copy it out. */
      memcpy(&aux, CMSG_DATA(c), sizeof aux);
      checksum_pending = (aux.tp_status & TP_STATUS_CSUMNOTREADY) != 0;
    }
    break;
  }
  CHECK(env, napi_create_object(env, &result));
  CHECK(env, napi_create_int64(env, (int64_t)n, &length));
  CHECK(env, napi_get_boolean(env, checksum_pending, &pending));
  CHECK(env, napi_set_named_property(env, result, "length", length));
  CHECK(env, napi_set_named_property(env, result, "checksumPending", pending));
  return result;
}

static napi_value close_socket(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd;
  if (!get_args(env, info, 1, argv) || !get_int(env, argv[0], "fd", &fd)) return NULL;
  /* No retry on EINTR: Linux always releases the fd, a retry could close a reused one. */
  if (close(fd) < 0 && errno != EINTR) return throw_errno(env, "closeSocket: close", NULL, errno);
  return NULL;
}

static napi_value interface_mac(napi_env env, napi_callback_info info) {
  napi_value argv[1], result;
  char ifname[IFNAMSIZ];
  struct ifreq ifr;
  if (!get_args(env, info, 1, argv) || !get_ifname(env, argv[0], ifname)) return NULL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, "interfaceMac: socket", ifname, errno);
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, ifname, IFNAMSIZ);
  int rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
  int err = errno;
  close(fd);
  if (rc < 0) return throw_errno(env, "interfaceMac: SIOCGIFHWADDR", ifname, err);
  CHECK(env, napi_create_buffer_copy(env, 6, ifr.ifr_hwaddr.sa_data, NULL, &result));
  return result;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    { "openPacketSocket", NULL, open_packet_socket, NULL, NULL, NULL, napi_enumerable, NULL },
    { "sendFrame", NULL, send_frame, NULL, NULL, NULL, napi_enumerable, NULL },
    { "receiveFrame", NULL, receive_frame, NULL, NULL, NULL, napi_enumerable, NULL },
    { "receiveFrameWithStatus", NULL, receive_frame_with_status, NULL, NULL, NULL, napi_enumerable, NULL },
    { "closeSocket", NULL, close_socket, NULL, NULL, NULL, napi_enumerable, NULL },
    { "interfaceMac", NULL, interface_mac, NULL, NULL, NULL, napi_enumerable, NULL },
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
