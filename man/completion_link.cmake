# SPDX-License-Identifier: MIT
# cmake -DPROG=PATH -DNAME=NAME -DOUT=DIR -P completion_link.cmake
# The bash completion of an installed example: DIR/NAME is a link to the
# pmtrack script, which completes NAME's options from NAME --help, when
# NAME --help prints a usage; a program that prints none (it would just
# run) gets file-name completion only, and nothing runs it.
execute_process(COMMAND ${PROG} --help INPUT_FILE /dev/null
	OUTPUT_VARIABLE help ERROR_VARIABLE help TIMEOUT 20
	RESULT_VARIABLE rc)
file(MAKE_DIRECTORY ${OUT})
file(REMOVE ${OUT}/${NAME})
string(REGEX MATCH "(^|\n)[ \t]*[Uu]sage:" usage "${help}")
if(usage)
	file(CREATE_LINK pmtrack ${OUT}/${NAME} SYMBOLIC)
else()
	file(WRITE ${OUT}/${NAME} "# SPDX-License-Identifier: MIT\n"
		"# bash completion for ${NAME}: it printed no usage for --help "
		"when it was\n# built, so file names only.\n"
		"complete -o bashdefault -o default ${NAME}\n")
endif()
