include(GoogleTest)

# coreserve_test(<name> <source> <libraries...>): one gtest binary per source, registered with ctest (through
# CMAKE_CROSSCOMPILING_EMULATOR when cross-building).
function(coreserve_test name source)
  add_executable(${name} ${source})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE ${ARGN} GTest::gtest GTest::gmock GTest::gtest_main coreserve_warnings)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120)
endfunction()
