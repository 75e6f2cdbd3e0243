"""What one GraphQL document may ask for, checked before anything runs.

Lists nest inside lists (photos → faces → photo → faces …), so the cost of a query grows
as the product of page sizes down each path: a few levels are enough to make one request
build millions of objects. Documents are refused at validation, in microseconds, when they
are too deep, too long, use too many aliases, or walk the same field of the same type
twice on one path (the only way to go back up the graph and multiply again). Page sizes
themselves are capped by the resolvers (`MAX_PAGE` in api.gql.schema).
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    get_named_type,
)
from graphql.type import GraphQLObjectType, GraphQLSchema
from strawberry.extensions import AddValidationRules, MaxAliasesLimiter, MaxTokensLimiter, QueryDepthLimiter

# The web client's deepest query is 5 levels, the tests' 6.
MAX_DEPTH = 8
MAX_TOKENS = 2_000
MAX_ALIASES = 15
# Inline fragments and spreads count towards this too: the walk below stops there.
MAX_SELECTIONS_WALKED = 5_000


class NoRepeatedTraversal(ValidationRule):
    """A path through the graph may use each field of each type once (`Photo.faces` then
    `Face.photo` then `Photo.faces` again is refused): the cycles are what multiply."""

    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        schema: GraphQLSchema = self.context.schema
        root = {
            "query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type,
        }[node.operation.value]
        fragments = {
            d.name.value: d for d in self.context.document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        budget = [MAX_SELECTIONS_WALKED]
        repeated = _first_repeat(node.selection_set, root, fragments, (), budget)
        if repeated:
            self.report_error(GraphQLError(
                f"query refused: it walks {repeated} more than once on one path; ask for it once and use ids",
                node, extensions={"code": "QUERY_TOO_COMPLEX"},
            ))
        elif budget[0] <= 0:
            self.report_error(GraphQLError("query refused: too many selections", node,
                                           extensions={"code": "QUERY_TOO_COMPLEX"}))


def _first_repeat(
    selections: SelectionSetNode | None, parent: Any, fragments: dict[str, FragmentDefinitionNode],
    path: tuple[str, ...], budget: list[int],
) -> str | None:
    if selections is None or not isinstance(parent, GraphQLObjectType):
        return None
    for selection in selections.selections:
        budget[0] -= 1
        if budget[0] <= 0:
            return None
        if isinstance(selection, FieldNode):
            if selection.name.value.startswith("__"):  # introspection (GraphiQL, codegen) is bounded by the schema
                continue
            field = parent.fields.get(selection.name.value)
            if field is None:  # unknown fields are another rule's error
                continue
            step = f"{parent.name}.{selection.name.value}"
            if step in path:
                return step
            found = _first_repeat(selection.selection_set, get_named_type(field.type), fragments, (*path, step), budget)
        elif isinstance(selection, InlineFragmentNode):
            found = _first_repeat(selection.selection_set, parent, fragments, path, budget)
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            found = _first_repeat(fragment.selection_set if fragment else None, parent, fragments, path, budget)
        else:
            found = None
        if found:
            return found
    return None


def _introspection(ignore: Any) -> bool:
    return ignore.field_name.startswith("__")


def limit_extensions() -> list[Any]:
    """The schema extensions that refuse oversized documents."""
    return [
        lambda: MaxTokensLimiter(max_token_count=MAX_TOKENS),
        lambda: MaxAliasesLimiter(max_alias_count=MAX_ALIASES),
        lambda: QueryDepthLimiter(max_depth=MAX_DEPTH, should_ignore=_introspection),
        lambda: AddValidationRules([NoRepeatedTraversal]),
    ]
