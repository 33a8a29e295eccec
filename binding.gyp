{
  "targets": [
    {
      "target_name": "rnnkit",
      "sources": [
        "native/addon.cpp",
        "native/seq.cpp",
        "native/gemm.cpp",
        "native/pool.cpp",
        "native/losses.cpp",
        "native/optim.cpp",
        "native/kern_avx512.cpp",
        "native/kern_avx512bf16.cpp",
        "native/kern_avx2.cpp",
        "native/kern_sse2.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-O3", "-std=gnu++17", "-fno-math-errno", "-Wno-psabi", "-fvisibility=hidden"]
    }
  ]
}
