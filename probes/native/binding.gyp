{
  "targets": [
    {
      "target_name": "citymesh_tos",
      "sources": ["tos.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
