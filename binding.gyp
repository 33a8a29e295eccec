{
  "targets": [
    {
      "target_name": "rnnkit",
      "sources": [
        "native/addon.cpp",
        "native/dispatch.cpp",
        "native/seq.cpp",
        "native/gemm.cpp",
        "native/pool.cpp",
        "native/losses.cpp",
        "native/optim.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-O3", "-std=gnu++17", "-fno-math-errno", "-ffp-contract=fast", "-Wno-psabi", "-fvisibility=hidden"],
      "conditions": [
        ["target_arch=='x64'", {
          "sources": [
            "native/kern_avx512.cpp",
            "native/kern_avx512bf16.cpp",
            "native/kern_avx2.cpp",
            "native/kern_sse2.cpp"
          ]
        }],
        ["target_arch=='arm64'", {
          "sources": ["native/kern_neon.cpp", "native/kern_neon_bf16.cpp"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "CLANG_CXX_LANGUAGE_STANDARD": "gnu++17",
            "MACOSX_DEPLOYMENT_TARGET": "11.0",
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
            "OTHER_CPLUSPLUSFLAGS": ["-O3", "-fno-math-errno", "-ffp-contract=fast"]
          }
        }],
        ["OS=='win'", {
          "msbuild_toolset": "ClangCL",
          "msvs_settings": {
            "VCCLCompilerTool": {
              "AdditionalOptions": ["/std:c++17", "/O2", "-fno-math-errno", "-ffp-contract=fast"]
            }
          }
        }]
      ]
    }
  ]
}
