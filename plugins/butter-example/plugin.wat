;; An example in the shape of Butter's `example-wasm`, written by hand in WAT against the same
;; ABI (TinyGo is not available here); not a port of its code, whose metadata keys differ. One
;; `pre_http` hook that reads the request JSON the host passes, reads its `greeting` config
;; value with `config_get`, and answers with metadata only, so the request continues unchanged:
;;   {"metadata":{"example_plugin":"<greeting, or \"hello from wasm\">"}}
;; It returns 0 (success); an input that is not a JSON object is left alone (empty output).
(module
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "free" (func $free (param i64)))
  (import "extism:host/env" "length" (func $length (param i64) (result i64)))
  (import "extism:host/env" "load_u8" (func $load_u8 (param i64) (result i32)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "config_get" (func $config_get (param i64) (result i64)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "greeting")
  (data (i32.const 16) "{\"metadata\":{\"example_plugin\":\"")
  (data (i32.const 64) "\"}}")
  (data (i32.const 80) "hello from wasm")
  ;; Output is assembled at 1024: prefix, value, suffix.
  (global $at (mut i32) (i32.const 1024))

  (func $put (param $p i32) (param $n i32)
    (memory.copy (global.get $at) (local.get $p) (local.get $n))
    (global.set $at (i32.add (global.get $at) (local.get $n))))

  ;; Copy a host block into guest memory at $at, dropping '"' and '\' so the JSON stays valid.
  (func $put_block (param $blk i64)
    (local $i i64) (local $n i64) (local $c i32)
    (local.set $n (call $length (local.get $blk)))
    (if (i64.gt_u (local.get $n) (i64.const 256)) (then (local.set $n (i64.const 256))))
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $c (call $load_u8 (i64.add (local.get $blk) (local.get $i))))
        (if (i32.and (i32.ne (local.get $c) (i32.const 34)) (i32.ne (local.get $c) (i32.const 92)))
          (then
            (i32.store8 (global.get $at) (local.get $c))
            (global.set $at (i32.add (global.get $at) (i32.const 1)))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next))))

  (func $config_greeting (result i64)
    (local $key i64) (local $i i32) (local $v i64)
    (local.set $key (call $alloc (i64.const 8)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const 8)))
        (call $store_u8 (i64.add (local.get $key) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (local.get $i)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $v (call $config_get (local.get $key)))
    (call $free (local.get $key))
    (local.get $v))

  (func (export "pre_http") (result i32)
    (local $v i64) (local $out i64) (local $i i32) (local $n i32)
    ;; The request JSON must be an object: first byte '{'.
    (if (i64.eqz (call $input_length)) (then (return (i32.const 0))))
    (if (i32.ne (call $input_load_u8 (i64.const 0)) (i32.const 123)) (then (return (i32.const 0))))
    (global.set $at (i32.const 1024))
    (call $put (i32.const 16) (i32.const 31))
    (local.set $v (call $config_greeting))
    (if (i64.eqz (local.get $v))
      (then (call $put (i32.const 80) (i32.const 15)))
      (else (call $put_block (local.get $v)) (call $free (local.get $v))))
    (call $put (i32.const 64) (i32.const 3))
    (local.set $n (i32.sub (global.get $at) (i32.const 1024)))
    (local.set $out (call $alloc (i64.extend_i32_u (local.get $n))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (call $store_u8 (i64.add (local.get $out) (i64.extend_i32_u (local.get $i)))
          (i32.load8_u (i32.add (i32.const 1024) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call $output_set (local.get $out) (i64.extend_i32_u (local.get $n)))
    (i32.const 0)))
