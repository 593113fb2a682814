//go:build linux && cgo

package dawn

// dawn.node (npm webgpu) is a Node addon: it imports these N-API functions
// from the Node process that would load it. Outside Node they are defined
// here, exported from the Go binary, so the dynamic linker can bind
// dawn.node's references when it is opened. None is ever called (the
// addon's module initialisation never runs); each would fail with
// napi_generic_failure. The list is that of the pinned webgpu@0.6.2 build;
// Load refuses a dawn.node importing any other napi_ function.

import "C"

// napiGenericFailure is N-API's napi_generic_failure status.
const napiGenericFailure = 9

//export napi_add_finalizer
func napi_add_finalizer() C.int { return napiGenericFailure }

//export napi_async_destroy
func napi_async_destroy() C.int { return napiGenericFailure }

//export napi_call_function
func napi_call_function() C.int { return napiGenericFailure }

//export napi_close_callback_scope
func napi_close_callback_scope() C.int { return napiGenericFailure }

//export napi_close_escapable_handle_scope
func napi_close_escapable_handle_scope() C.int { return napiGenericFailure }

//export napi_close_handle_scope
func napi_close_handle_scope() C.int { return napiGenericFailure }

//export napi_coerce_to_bool
func napi_coerce_to_bool() C.int { return napiGenericFailure }

//export napi_coerce_to_number
func napi_coerce_to_number() C.int { return napiGenericFailure }

//export napi_coerce_to_object
func napi_coerce_to_object() C.int { return napiGenericFailure }

//export napi_coerce_to_string
func napi_coerce_to_string() C.int { return napiGenericFailure }

//export napi_create_array_with_length
func napi_create_array_with_length() C.int { return napiGenericFailure }

//export napi_create_double
func napi_create_double() C.int { return napiGenericFailure }

//export napi_create_error
func napi_create_error() C.int { return napiGenericFailure }

//export napi_create_external
func napi_create_external() C.int { return napiGenericFailure }

//export napi_create_external_arraybuffer
func napi_create_external_arraybuffer() C.int { return napiGenericFailure }

//export napi_create_function
func napi_create_function() C.int { return napiGenericFailure }

//export napi_create_object
func napi_create_object() C.int { return napiGenericFailure }

//export napi_create_promise
func napi_create_promise() C.int { return napiGenericFailure }

//export napi_create_range_error
func napi_create_range_error() C.int { return napiGenericFailure }

//export napi_create_reference
func napi_create_reference() C.int { return napiGenericFailure }

//export napi_create_string_utf8
func napi_create_string_utf8() C.int { return napiGenericFailure }

//export napi_create_type_error
func napi_create_type_error() C.int { return napiGenericFailure }

//export napi_define_class
func napi_define_class() C.int { return napiGenericFailure }

//export napi_define_properties
func napi_define_properties() C.int { return napiGenericFailure }

//export napi_delete_reference
func napi_delete_reference() C.int { return napiGenericFailure }

//export napi_detach_arraybuffer
func napi_detach_arraybuffer() C.int { return napiGenericFailure }

//export napi_escape_handle
func napi_escape_handle() C.int { return napiGenericFailure }

//export napi_fatal_error
func napi_fatal_error() C.int { return napiGenericFailure }

//export napi_get_and_clear_last_exception
func napi_get_and_clear_last_exception() C.int { return napiGenericFailure }

//export napi_get_array_length
func napi_get_array_length() C.int { return napiGenericFailure }

//export napi_get_arraybuffer_info
func napi_get_arraybuffer_info() C.int { return napiGenericFailure }

//export napi_get_boolean
func napi_get_boolean() C.int { return napiGenericFailure }

//export napi_get_cb_info
func napi_get_cb_info() C.int { return napiGenericFailure }

//export napi_get_element
func napi_get_element() C.int { return napiGenericFailure }

//export napi_get_global
func napi_get_global() C.int { return napiGenericFailure }

//export napi_get_instance_data
func napi_get_instance_data() C.int { return napiGenericFailure }

//export napi_get_last_error_info
func napi_get_last_error_info() C.int { return napiGenericFailure }

//export napi_get_named_property
func napi_get_named_property() C.int { return napiGenericFailure }

//export napi_get_new_target
func napi_get_new_target() C.int { return napiGenericFailure }

//export napi_get_null
func napi_get_null() C.int { return napiGenericFailure }

//export napi_get_property
func napi_get_property() C.int { return napiGenericFailure }

//export napi_get_property_names
func napi_get_property_names() C.int { return napiGenericFailure }

//export napi_get_reference_value
func napi_get_reference_value() C.int { return napiGenericFailure }

//export napi_get_typedarray_info
func napi_get_typedarray_info() C.int { return napiGenericFailure }

//export napi_get_undefined
func napi_get_undefined() C.int { return napiGenericFailure }

//export napi_get_value_bool
func napi_get_value_bool() C.int { return napiGenericFailure }

//export napi_get_value_double
func napi_get_value_double() C.int { return napiGenericFailure }

//export napi_get_value_external
func napi_get_value_external() C.int { return napiGenericFailure }

//export napi_get_value_int32
func napi_get_value_int32() C.int { return napiGenericFailure }

//export napi_get_value_int64
func napi_get_value_int64() C.int { return napiGenericFailure }

//export napi_get_value_string_utf8
func napi_get_value_string_utf8() C.int { return napiGenericFailure }

//export napi_get_value_uint32
func napi_get_value_uint32() C.int { return napiGenericFailure }

//export napi_has_property
func napi_has_property() C.int { return napiGenericFailure }

//export napi_instanceof
func napi_instanceof() C.int { return napiGenericFailure }

//export napi_is_array
func napi_is_array() C.int { return napiGenericFailure }

//export napi_is_arraybuffer
func napi_is_arraybuffer() C.int { return napiGenericFailure }

//export napi_is_exception_pending
func napi_is_exception_pending() C.int { return napiGenericFailure }

//export napi_is_typedarray
func napi_is_typedarray() C.int { return napiGenericFailure }

//export napi_new_instance
func napi_new_instance() C.int { return napiGenericFailure }

//export napi_open_escapable_handle_scope
func napi_open_escapable_handle_scope() C.int { return napiGenericFailure }

//export napi_open_handle_scope
func napi_open_handle_scope() C.int { return napiGenericFailure }

//export napi_reference_unref
func napi_reference_unref() C.int { return napiGenericFailure }

//export napi_reject_deferred
func napi_reject_deferred() C.int { return napiGenericFailure }

//export napi_remove_wrap
func napi_remove_wrap() C.int { return napiGenericFailure }

//export napi_resolve_deferred
func napi_resolve_deferred() C.int { return napiGenericFailure }

//export napi_run_script
func napi_run_script() C.int { return napiGenericFailure }

//export napi_set_element
func napi_set_element() C.int { return napiGenericFailure }

//export napi_set_instance_data
func napi_set_instance_data() C.int { return napiGenericFailure }

//export napi_set_named_property
func napi_set_named_property() C.int { return napiGenericFailure }

//export napi_set_property
func napi_set_property() C.int { return napiGenericFailure }

//export napi_throw
func napi_throw() C.int { return napiGenericFailure }

//export napi_typeof
func napi_typeof() C.int { return napiGenericFailure }

//export napi_unwrap
func napi_unwrap() C.int { return napiGenericFailure }

//export napi_wrap
func napi_wrap() C.int { return napiGenericFailure }

// napiStubs names the functions above, for the check in Load.
var napiStubs = map[string]bool{
	"napi_add_finalizer":                true,
	"napi_async_destroy":                true,
	"napi_call_function":                true,
	"napi_close_callback_scope":         true,
	"napi_close_escapable_handle_scope": true,
	"napi_close_handle_scope":           true,
	"napi_coerce_to_bool":               true,
	"napi_coerce_to_number":             true,
	"napi_coerce_to_object":             true,
	"napi_coerce_to_string":             true,
	"napi_create_array_with_length":     true,
	"napi_create_double":                true,
	"napi_create_error":                 true,
	"napi_create_external":              true,
	"napi_create_external_arraybuffer":  true,
	"napi_create_function":              true,
	"napi_create_object":                true,
	"napi_create_promise":               true,
	"napi_create_range_error":           true,
	"napi_create_reference":             true,
	"napi_create_string_utf8":           true,
	"napi_create_type_error":            true,
	"napi_define_class":                 true,
	"napi_define_properties":            true,
	"napi_delete_reference":             true,
	"napi_detach_arraybuffer":           true,
	"napi_escape_handle":                true,
	"napi_fatal_error":                  true,
	"napi_get_and_clear_last_exception": true,
	"napi_get_array_length":             true,
	"napi_get_arraybuffer_info":         true,
	"napi_get_boolean":                  true,
	"napi_get_cb_info":                  true,
	"napi_get_element":                  true,
	"napi_get_global":                   true,
	"napi_get_instance_data":            true,
	"napi_get_last_error_info":          true,
	"napi_get_named_property":           true,
	"napi_get_new_target":               true,
	"napi_get_null":                     true,
	"napi_get_property":                 true,
	"napi_get_property_names":           true,
	"napi_get_reference_value":          true,
	"napi_get_typedarray_info":          true,
	"napi_get_undefined":                true,
	"napi_get_value_bool":               true,
	"napi_get_value_double":             true,
	"napi_get_value_external":           true,
	"napi_get_value_int32":              true,
	"napi_get_value_int64":              true,
	"napi_get_value_string_utf8":        true,
	"napi_get_value_uint32":             true,
	"napi_has_property":                 true,
	"napi_instanceof":                   true,
	"napi_is_array":                     true,
	"napi_is_arraybuffer":               true,
	"napi_is_exception_pending":         true,
	"napi_is_typedarray":                true,
	"napi_new_instance":                 true,
	"napi_open_escapable_handle_scope":  true,
	"napi_open_handle_scope":            true,
	"napi_reference_unref":              true,
	"napi_reject_deferred":              true,
	"napi_remove_wrap":                  true,
	"napi_resolve_deferred":             true,
	"napi_run_script":                   true,
	"napi_set_element":                  true,
	"napi_set_instance_data":            true,
	"napi_set_named_property":           true,
	"napi_set_property":                 true,
	"napi_throw":                        true,
	"napi_typeof":                       true,
	"napi_unwrap":                       true,
	"napi_wrap":                         true,
}
