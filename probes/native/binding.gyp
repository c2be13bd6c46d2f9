{
  "targets": [
    {
      "target_name": "citymesh_tos",
      "sources": ["tos.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    },
    {
      "target_name": "citymesh_stamp",
      "sources": ["stamp.c"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-pthread"],
      "libraries": ["-lpthread"]
    }
  ]
}
