{
  "targets": [
    {
      "target_name": "vipd_packet",
      "sources": ["native/packet.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
