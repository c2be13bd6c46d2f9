{
  "targets": [
    {
      "target_name": "clickhouse-node",
      "type": "executable",
      "sources": ["clickhouse-node.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "libraries": ["-ldl", "-lutil"]
    }
  ]
}
