# Runs one fuzz target for a bounded time (cmake -P, from the fuzz.<target> CTest tests):
#   -DFUZZER=binary -DWORK=working corpus (emptied first) -DSEEDS=seed corpus
#   -DFINDINGS=where crash/leak/timeout inputs go -DNAME=target -DSECONDS=fuzzing time
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}" "${FINDINGS}")
execute_process(
  COMMAND "${FUZZER}" -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=10 -max_len=65536
          -print_final_stats=1 "-artifact_prefix=${FINDINGS}/${NAME}-" "${WORK}" "${SEEDS}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzz_${NAME} ended with '${rc}': a finding, its input saved under ${FINDINGS}/${NAME}-* "
                      "(reproduce: ${FUZZER} FILE)")
endif()
