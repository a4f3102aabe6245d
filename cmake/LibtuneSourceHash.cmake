# libtune_source_hash(<out_var> <files...>): a short SHA-256 over the given sources, used as
# a template's version so results measured with older kernel code are detected as stale.
# Editing a listed file re-runs the configure step, so the hash always matches the build.
function(libtune_source_hash out_var)
  set(all "")
  foreach(f IN LISTS ARGN)
    get_filename_component(abs "${f}" ABSOLUTE)
    file(SHA256 "${abs}" h)
    string(APPEND all "${h}")
    set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${abs}")
  endforeach()
  string(SHA256 combined "${all}")
  string(SUBSTRING "${combined}" 0 16 short)
  set(${out_var} "${short}" PARENT_SCOPE)
endfunction()
